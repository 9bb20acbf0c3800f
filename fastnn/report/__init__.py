"""python -m fastnn.report: the report of a saved model (command), its numbers, figures and
page, and the training plots."""
