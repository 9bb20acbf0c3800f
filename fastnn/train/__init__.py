"""python -m fastnn.train: the training command (command), its options, what a run writes
(outputs) and how a saved run goes on (resume)."""
