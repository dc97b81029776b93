"""The dataset table: what each dataset is, where its files come from, and their checksums.

Every file is checked against the size and SHA-256 recorded here after every download and on
every read, so a truncated or corrupt file is never used.
"""

from dataclasses import dataclass

from .errors import UnknownDatasetError

MNIST_URLS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
FASHION_URLS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
)
BINARIZED_URLS = ("http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/",)


@dataclass(frozen=True)
class FileInfo:
    """One file of a dataset: stored as <data folder>/<folder>/<name>, fetched from urls."""

    folder: str          # subfolder in the data folder and in a mirror, e.g. "mnist"
    name: str            # file name, as on the server
    size: int            # bytes
    sha256: str          # hex digest of the file as downloaded (gzip files: of the .gz)
    split: str           # "train", "valid" or "test"
    role: str            # "images" or "labels"
    urls: tuple          # full URLs, tried in order

    @property
    def relpath(self) -> str:
        """Path relative to the data folder (or mirror), e.g. 'mnist/t10k-images-idx3-ubyte.gz'."""
        return f"{self.folder}/{self.name}"


@dataclass(frozen=True)
class DatasetInfo:
    """What minivae knows about one dataset; `files` is empty for generated datasets."""

    name: str            # the name load() takes
    description: str
    source: str          # who made it, and where it comes from
    license: str
    image_shape: tuple   # (height, width) of one image
    splits: dict         # split name -> number of examples
    files: tuple         # FileInfo for every file, empty if generated

    def file(self, split: str, role: str) -> FileInfo:
        """The FileInfo for (split, role), e.g. ("test", "labels")."""
        for f in self.files:
            if f.split == split and f.role == role:
                return f
        raise KeyError(f"dataset {self.name!r} has no {role} file for split {split!r}")

    @property
    def total_size(self) -> int:
        """Bytes to download for the whole dataset."""
        return sum(f.size for f in self.files)


def _files(folder, bases, table):
    """FileInfo for every row (name, size, sha256, split, role), URLs = base + name."""
    return tuple(
        FileInfo(folder, name, size, sha, split, role, tuple(b + name for b in bases))
        for name, size, sha, split, role in table
    )


_MNIST = [  # name, size, sha256, split, role
    ("train-images-idx3-ubyte.gz", 9912422,
     "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", "train", "images"),
    ("train-labels-idx1-ubyte.gz", 28881,
     "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", "train", "labels"),
    ("t10k-images-idx3-ubyte.gz", 1648877,
     "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", "test", "images"),
    ("t10k-labels-idx1-ubyte.gz", 4542,
     "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", "test", "labels"),
]
_FASHION = [
    ("train-images-idx3-ubyte.gz", 26421880,
     "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", "train", "images"),
    ("train-labels-idx1-ubyte.gz", 29515,
     "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", "train", "labels"),
    ("t10k-images-idx3-ubyte.gz", 4422102,
     "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", "test", "images"),
    ("t10k-labels-idx1-ubyte.gz", 5148,
     "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", "test", "labels"),
]
_BINARIZED = [
    ("binarized_mnist_train.amat", 78400000,
     "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d", "train", "images"),
    ("binarized_mnist_valid.amat", 15680000,
     "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2", "valid", "images"),
    ("binarized_mnist_test.amat", 15680000,
     "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c", "test", "images"),
]

DATASETS = {
    "mnist": DatasetInfo(
        name="mnist",
        description="Handwritten digits 0-9, 28x28 grey levels; y = digit.",
        source="LeCun, Cortes & Burges, THE MNIST DATABASE of handwritten digits",
        license="CC BY-SA 3.0",
        image_shape=(28, 28),
        splits={"train": 60000, "test": 10000},
        files=_files("mnist", MNIST_URLS, _MNIST),
    ),
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist",
        description="Zalando article images in 10 classes, 28x28 grey levels; a drop-in for MNIST.",
        source="Xiao, Rasul & Vollgraf (2017), Zalando Research, Fashion-MNIST",
        license="MIT",
        image_shape=(28, 28),
        splits={"train": 60000, "test": 10000},
        files=_files("fashion-mnist", FASHION_URLS, _FASHION),
    ),
    "binarized-mnist": DatasetInfo(
        name="binarized-mnist",
        description="MNIST binarized once (pixels 0/1), the fixed benchmark of the VAE/IWAE "
                    "literature; no labels; train 50k / valid 10k / test 10k.",
        source="Larochelle & Murray (2011), The Neural Autoregressive Distribution Estimator",
        license="as MNIST (CC BY-SA 3.0)",
        image_shape=(28, 28),
        splits={"train": 50000, "valid": 10000, "test": 10000},
        files=_files("binarized-mnist", BINARIZED_URLS, _BINARIZED),
    ),
    "sprites": DatasetInfo(
        name="sprites",
        description="32x32 binary shapes (square, ellipse, heart) on a complete grid of 5 scales x "
                    "8 orientations x 8 x-positions x 8 y-positions, with the factor values; "
                    "generated by minivae, no download. y = shape index.",
        source="generated by minivae.data.sprites (after the dSprites benchmark, Matthey et al. "
               "2017)",
        license="MIT (part of minivae)",
        image_shape=(32, 32),
        splits={"train": 6912, "test": 768},
        files=(),
    ),
}


def list_datasets() -> list:
    """Info for every dataset, in the order of DATASETS."""
    return list(DATASETS.values())


def get_info(name: str) -> DatasetInfo:
    """DatasetInfo for name; UnknownDatasetError listing the known names otherwise."""
    if not isinstance(name, str) or name not in DATASETS:
        raise UnknownDatasetError(f"unknown dataset {name!r}; known datasets: "
                                  f"{', '.join(DATASETS)}")
    return DATASETS[name]


def check_split(info: DatasetInfo, split: str) -> None:
    """UnknownDatasetError listing the valid splits if split is not one of info's."""
    if not isinstance(split, str) or split not in info.splits:
        raise UnknownDatasetError(f"dataset {info.name!r} has no split {split!r}; "
                                  f"valid splits: {', '.join(info.splits)}")
