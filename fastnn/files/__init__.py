"""Files: the model file (fastnn.files.persist), its members' checks, the training history
it keeps, and writing any output whole or not at all."""
