"""The training core: the network, its hyperparameters, the update rules, dropout and
augmentation, and the loop that trains a run, whichever front end built it."""
