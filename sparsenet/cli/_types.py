"""Option types used across the commands."""

from pathlib import Path

import click

EXISTING = click.Path(exists=True, path_type=Path)  # a file or folder that must exist
EXISTING_DIR = click.Path(exists=True, file_okay=False, path_type=Path)
NEW_DIR = click.Path(file_okay=False, path_type=Path)  # a folder that may not exist yet
NEW_FILE = click.Path(dir_okay=False, path_type=Path)
POSITIVE = click.IntRange(min=1)
