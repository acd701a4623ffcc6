"""`ganprint registry ...`: record which fingerprint identifies which model."""

from __future__ import annotations

import json
import sys

import click

from ..registry import DEFAULT_TIMEOUT, Entry, Registry, default_min_distance

registry_option = click.option(
    "--registry", "location", required=True, envvar="GANPRINT_REGISTRY", show_envvar=True, metavar="DB",
    help="Registry: an SQLite file (created by add/issue/import) or an SQLAlchemy URL "
    "(e.g. postgresql://user@host/db).",
)  # fmt: skip
timeout_option = click.option(
    "--timeout", type=click.FloatRange(min=0), default=DEFAULT_TIMEOUT, show_default=True,
    help="Seconds to wait for the registry: for another process that is writing to it, and on a database "
    "server for the connection (at least 2 s) and for each statement.",
)  # fmt: skip
allow_degenerate_option = click.option(
    "--allow-degenerate", is_flag=True,
    help="Register a fingerprint with too few or too many one bits anyway (all zeros, all ones, nearly so): "
    "a broken decoder stuck at constant bits would match it.",
)  # fmt: skip
method_option = click.option(
    "--method", default="codec", show_default=True, metavar="NAME",
    help="How the fingerprint is embedded: codec (ICCV 2021), scalable (ICLR 2022) or another name.",
)  # fmt: skip


def _describe(entry: Entry) -> str:
    return "\n".join([
        f"model:       {entry.model}",
        f"owner:       {entry.owner}",
        f"method:      {entry.method}",
        f"length:      {entry.length} bits",
        f"fingerprint: {entry.fingerprint}",
        f"bits:        {entry.bit_string}",
        f"created:     {entry.created}",
        f"notes:       {entry.notes}",
        f"id:          {entry.id}",
    ])  # fmt: skip


@click.group()
def registry() -> None:
    """The fingerprint registry: which fingerprint was issued to which model, owner and method.
    One SQLite file by default, safe with several processes writing at once; any SQLAlchemy database
    URL for a shared deployment. Reading (list, show, export, attribute) never writes, so a registry on
    read-only storage can be read; --timeout bounds every wait, a database server's included.

    \b
    Examples:
      ganprint registry issue --registry fp.db --model acme-gan-v1 --length 100 --owner ACME
      ganprint registry add --registry fp.db --model my-gan --fingerprint 0x9f3c... --method codec
      ganprint registry list --registry fp.db
      ganprint attribute --registry fp.db generated/
    """


@registry.command()
@registry_option
@click.option("--model", required=True, help="Name of the model the fingerprint identifies (unique).")
@click.option("--fingerprint", required=True, metavar="BITS|HEX", help="The fingerprint: 0/1 characters or hex.")
@click.option("--length", type=click.IntRange(1, 4096), default=None,
              help="Bits in the fingerprint, to check it (and to read hex with leading zero bits).")
@method_option
@click.option("--owner", default="", help="Who holds the model.")
@click.option("--notes", default="", help="Free text.")
@allow_degenerate_option
@timeout_option
def add(location, model, fingerprint, length, method, owner, notes, allow_degenerate, timeout) -> None:
    """Register a fingerprint that was chosen elsewhere (e.g. used with `codec embed --fingerprint`).
    Degenerate fingerprints (all zeros, all ones, very few or very many ones) are refused unless
    --allow-degenerate is given.

    \b
    Examples:
      ganprint registry add --registry fp.db --model acme-gan-v1 --fingerprint 0x1f2e3d4c5b6a7980a1b2c3d4e \\
          --length 100 --owner ACME --notes "CelebA 128, ProGAN"
      ganprint registry add --registry postgresql://fp@db.internal/fingerprints --model m --fingerprint 0101...
    """
    with Registry(location, create=True, timeout=timeout) as reg:
        entry = reg.add(model, fingerprint, method=method, owner=owner, notes=notes, length=length,
                        allow_degenerate=allow_degenerate)  # fmt: skip
    click.echo(f"registered {entry.model}: {entry.length}-bit {entry.method} fingerprint {entry.fingerprint}")


@registry.command()
@registry_option
@click.option("--model", required=True, help="Name of the model the new fingerprint will identify (unique).")
@click.option("--length", type=click.IntRange(1, 4096), default=100, show_default=True,
              help="Bits (the decoder's fingerprint length: 100 for codec-32, 128 for scalable models).")
@method_option
@click.option("--owner", default="", help="Who holds the model.")
@click.option("--notes", default="", help="Free text.")
@click.option("--min-distance", type=click.IntRange(min=0), default=None,
              help="Minimum Hamming distance to every registered fingerprint of this length [default: length/4].")
@click.option("--seed", type=int, default=None, help="Random seed (default: the operating system's entropy).")
@timeout_option
@click.option("--json", "as_json", is_flag=True, help="Print the new entry as JSON.")
def issue(location, model, length, method, owner, notes, min_distance, seed, timeout, as_json) -> None:
    """Issue a new random fingerprint for a model and register it, at a guaranteed minimum Hamming
    distance from every fingerprint of the same length already registered.

    \b
    Examples:
      ganprint registry issue --registry fp.db --model acme-gan-v2 --length 100 --owner ACME
      fp=$(ganprint registry issue --registry fp.db --model m3 --length 100 --json | jq -r .fingerprint)
      ganprint codec embed --data_dir train/ --output_dir marked/ --fingerprint $fp
    """
    with Registry(location, create=True, timeout=timeout) as reg:
        (entry,) = reg.issue(model, length, method=method, owner=owner, notes=notes, min_distance=min_distance,
                             seed=seed)  # fmt: skip
    if as_json:
        click.echo(json.dumps(entry.to_json()))
        return
    distance = default_min_distance(length) if min_distance is None else min_distance
    click.echo(f"issued {entry.model}: {entry.length}-bit {entry.method} fingerprint (>= {distance} bits from all others)")
    click.echo(f"hex:  {entry.fingerprint}\nbits: {entry.bit_string}")


@registry.command(name="list")
@registry_option
@click.option("--method", default=None, help="Only this method.")
@click.option("--length", type=click.IntRange(1, 4096), default=None, help="Only this length.")
@click.option("--jsonl", "as_jsonl", is_flag=True, help="One JSON object per line instead of a table.")
@timeout_option
def list_(location, method, length, as_jsonl, timeout) -> None:
    """List registered fingerprints in registration order.

    \b
    Examples:
      ganprint registry list --registry fp.db
      ganprint registry list --registry fp.db --method scalable --length 128 --jsonl
    """
    with Registry(location, timeout=timeout, read_only=True) as reg:
        entries = reg.entries(method=method, length=length)
    if as_jsonl:
        for entry in entries:
            click.echo(json.dumps(entry.to_json(), ensure_ascii=False))
        return
    width = max([5] + [len(e.model) for e in entries])
    click.echo(f"{'model':<{width}}  {'method':<8} {'bits':>4}  {'created':<20}  {'owner':<16} fingerprint")
    for e in entries:
        click.echo(f"{e.model:<{width}}  {e.method:<8} {e.length:>4}  {e.created:<20}  {e.owner:<16} {e.fingerprint}")
    click.echo(f"{len(entries)} fingerprints", err=True)


@registry.command()
@registry_option
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print the entry as JSON.")
@timeout_option
def show(location, model, as_json, timeout) -> None:
    """Show one registered model's fingerprint.

    \b
    Example:
      ganprint registry show --registry fp.db acme-gan-v1
    """
    with Registry(location, timeout=timeout, read_only=True) as reg:
        entry = reg.get(model)
    click.echo(json.dumps(entry.to_json()) if as_json else _describe(entry))


@registry.command()
@registry_option
@click.argument("model")
@click.option("--yes", is_flag=True, help="Confirm: the removal cannot be undone.")
@timeout_option
def remove(location, model, yes, timeout) -> None:
    """Remove a model's fingerprint: its images will no longer be attributed to it.

    \b
    Example:
      ganprint registry remove --registry fp.db acme-gan-v1 --yes
    """
    if not yes:
        raise click.UsageError("removing a registered fingerprint cannot be undone; pass --yes")
    with Registry(location, timeout=timeout) as reg:
        entry = reg.remove(model)
    click.echo(f"removed {entry.model} ({entry.length}-bit {entry.method} fingerprint {entry.fingerprint})")


@registry.command(name="import")
@registry_option
@click.argument("file", metavar="FILE|-")
@click.option("--skip-existing", is_flag=True, help="Skip entries identical to registered ones instead of failing.")
@allow_degenerate_option
@timeout_option
def import_(location, file, skip_existing, allow_degenerate, timeout) -> None:
    """Add the entries of a JSON-lines file (as written by `export`) in one transaction: all or nothing.

    \b
    Examples:
      ganprint registry import --registry fp.db fingerprints.jsonl
      ganprint registry export --registry old.db - | ganprint registry import --registry new.db -
    """
    with Registry(location, create=True, timeout=timeout) as reg:
        added, skipped = reg.import_file(file, skip_existing=skip_existing, allow_degenerate=allow_degenerate)
    click.echo(f"imported {added} fingerprints" + (f", skipped {skipped} already registered" if skipped else ""))


@registry.command()
@registry_option
@click.argument("file", metavar="FILE|-", default="-")
@click.option("--overwrite", is_flag=True, help="Replace FILE if it exists.")
@timeout_option
def export(location, file, overwrite, timeout) -> None:
    """Write every entry as JSON lines (model, fingerprint, length, method, owner, created, notes).

    \b
    Examples:
      ganprint registry export --registry fp.db fingerprints.jsonl
      ganprint registry export --registry fp.db > fingerprints.jsonl
    """
    with Registry(location, timeout=timeout, read_only=True) as reg:
        if file == "-":
            n = reg.export_jsonl(sys.stdout)
            sys.stdout.flush()
        else:
            n = reg.export_file(file, overwrite=overwrite)
    click.echo(f"exported {n} fingerprints", err=True)
