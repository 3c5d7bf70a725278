"""``python -m resnet_lightning`` is the ``resnet-lightning`` command."""

from .cli import main

if __name__ == "__main__":
    main()
