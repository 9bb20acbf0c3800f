"""The version of fastnn, in one place: `fastnn.__version__`, the distribution's version (read
by pyproject.toml) and every command's --version."""

__version__ = "0.1.0"
