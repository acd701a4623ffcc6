"""`ganprint attacks`: the attacks of the robustness suite and their strength levels."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def attacks(as_json) -> None:
    """List the image-level and model-level attacks of `ganprint evaluate` with their default levels.

    Give levels to `ganprint evaluate --attacks` as NAME (all default levels) or NAME:VALUE, comma
    separated; any value inside an attack's range works, not only the defaults.

    \b
    Examples:
      ganprint attacks
      ganprint evaluate --codec codec-32 --output_dir rob/ --attacks jpeg:75,noise:0.05,crop,quantize:8
    """
    from ..attacks import ATTACKS
    from ..model_attacks import MODEL_ATTACKS

    entries = [*ATTACKS.values(), *MODEL_ATTACKS.values()]
    if as_json:
        click.echo(json.dumps([
            {"name": a.name, "kind": a.kind, "parameter": a.parameter, "levels": list(a.levels),
             "range": list(a.valid), "identity": a.identity, "summary": a.summary}
            for a in entries
        ], indent=2))  # fmt: skip
        return
    width = max(len(a.name) for a in entries)
    for kind, title in (("image", "Image attacks"), ("model", "Model attacks (perturb the network, then generate)")):
        click.echo(f"{title}:")
        for a in entries:
            if a.kind != kind:
                continue
            levels = ", ".join(f"{v:g}" for v in a.levels)
            click.echo(f"  {a.name:<{width}}  {a.parameter}: {levels}  [range {a.valid[0]:g}..{a.valid[1]:g}]")
            click.echo(f"  {'':<{width}}  {a.summary}")
        click.echo("")
