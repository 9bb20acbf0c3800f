"""python -m fastnn.predict: predictions for images or a Kaggle CSV (command), and how an
image of a digit becomes MNIST's 28 x 28 pixels (images)."""
