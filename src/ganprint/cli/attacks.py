"""`ganprint attacks`: the attacks of the robustness suite and their strength levels."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def attacks(as_json) -> None:
    """List the image-level and model-level attacks of `ganprint evaluate` with their default levels.

    Give levels to `ganprint evaluate --attacks` as NAME (all default levels) or NAME:VALUE, comma
    separated; any value inside an attack's range works, not only the defaults. Attacks marked
    "changes the size" return smaller (or larger) images, as a resized or cropped copy is: only
    any-size codecs read them. Image attacks work on images of any size.

    \b
    Examples:
      ganprint attacks
      ganprint evaluate --codec codec-32 --output_dir rob/ --attacks jpeg:75,noise:0.05,crop,quantize:8
      ganprint evaluate --codec codec-any --data photos/ --output_dir rob/ --attacks webp:80,rescale:0.5,crop_area
    """
    from ..attacks import ANY_SIZE_ATTACKS, ATTACKS, FIXED_SIZE_ATTACKS
    from ..model_attacks import MODEL_ATTACKS

    entries = [*ATTACKS.values(), *MODEL_ATTACKS.values()]
    if as_json:
        click.echo(json.dumps([
            {"name": a.name, "kind": a.kind, "parameter": a.parameter, "levels": list(a.levels),
             "range": list(a.valid), "identity": a.identity, "summary": a.summary,
             "keeps_size": getattr(a, "keeps_size", True)}
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
            size = "" if getattr(a, "keeps_size", True) else "  (changes the size)"
            click.echo(f"  {a.name:<{width}}  {a.parameter}: {levels}  [range {a.valid[0]:g}..{a.valid[1]:g}]{size}")
            click.echo(f"  {'':<{width}}  {a.summary}")
        click.echo("")
    click.echo(f"Default grid of fixed-resolution codecs: {', '.join(FIXED_SIZE_ATTACKS)} (all levels) and, for models, "
               "weight_noise, quantize, prune.")
    click.echo(f"Default grid of any-size codecs (issue 20's attacks in the wild): {ANY_SIZE_ATTACKS}")
