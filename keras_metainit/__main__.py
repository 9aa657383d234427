"""`python -m keras_metainit` is the `keras-metainit` command."""
from keras_metainit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
