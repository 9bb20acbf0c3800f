"""python -m fastnn.serve: the page to draw digits on (command), its HTTP server and its
answers."""
