"""The run machinery: what wraps the training loop (minivae.train.fit) for `minivae train`.

    config.py      TrainConfig and the model `minivae train` builds: every default, once
    folder.py      run folders: config.json, metrics.jsonl, the lock, opening a run
    checkpoint.py  checkpoint.npz: saved each epoch, read without pickle
    atomic.py      atomic writes, for every file minivae saves
    stopping.py    Ctrl-C and SIGTERM: stop after the batch, save, exit 130 / 143
    trainer.py     train(run): fit, with checkpoints, resume, signals and divergence as
                   callbacks around it
    callbacks.py   callbacks that know nothing of run folders: a signal stops fit, a progress
                   bar, the test loss after each epoch
"""
