"""The `ganprint` command: a click group whose errors are one line and a non-zero exit.

Exit codes: 0 success; 1 an error (bad input, wrong file, mismatched model); 2 a usage error;
130 interrupted. Set GANPRINT_DEBUG=1 to see the traceback of an unexpected error.
"""

from __future__ import annotations

import os
import sys

import click

from ..errors import GanprintError
from ..limits import describe_os_error
from .attacks import attacks
from .attribute import attribute
from .calibrate import calibrate
from .codec import codec
from .codec_anysize import train_anysize
from .dataset import dataset
from .demo import demo
from .evaluate import evaluate
from .fid import fid
from .gan import gan
from .registry import registry
from .scalable import scalable
from .serve import serve
from .transfer import transfer


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="ganprint")
def cli() -> None:
    """ganprint: fingerprint generative image models so that their images can be detected and
    attributed.

    \b
    Examples:
      ganprint demo                                   # embed, save, detect on built-in images
      ganprint codec embed --data_dir photos/ --output_dir out/ --identical_fingerprints
      ganprint codec detect --data_dir out/fingerprinted_images --output_dir det/ \\
          --expected out/embedded_fingerprints.txt
    """
    from ..data import set_follow_links

    set_follow_links(False)  # runs before the command's own options: only its --follow-links can change it


codec.add_command(train_anysize)
cli.add_command(codec)
cli.add_command(dataset)
cli.add_command(demo)
cli.add_command(attacks)
cli.add_command(evaluate)
cli.add_command(registry)
cli.add_command(attribute)
cli.add_command(calibrate)
cli.add_command(scalable)
cli.add_command(gan)
cli.add_command(transfer)
cli.add_command(fid)
cli.add_command(serve)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="ganprint", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:  # usage errors: click's own message, exit 2
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except GanprintError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:  # a full disk, a read-only folder, ...: say which path and what to do
        click.echo(f"error: {describe_os_error(exc)}", err=True)
        sys.exit(1)
    except MemoryError:
        click.echo("error: out of memory; use smaller batches, images or --resolution, or a machine with more memory",
                   err=True)  # fmt: skip
        sys.exit(1)
    except Exception as exc:  # never a traceback for users; the message still names the failure
        if os.environ.get("GANPRINT_DEBUG"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        click.echo(f"error: {exc.__class__.__name__}: {message} (set GANPRINT_DEBUG=1 for details)", err=True)
        sys.exit(1)
