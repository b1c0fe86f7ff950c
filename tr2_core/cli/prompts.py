"""``tr2 prompts``: compute the (37, 26, D) CLIP text-embedding table once."""

from __future__ import annotations

import argparse

NAME = "prompts"
HELP = "encode the guidance prompts with the CLIP text tower into text_table.npz"
DESCRIPTION = """\
Encode every (object, predicate) prompt -- "a photo of a person {predicate} a
{object}", spatial predicates as "a photo of a {object} {predicate} a person",
readable names -- with the frozen CLIP text tower of the model config, once, and
store the (37, 26, D) table as an .npz (no pickle) with the CLIP model name and
weights hashes. The table feeds the guidance loss and the text classifier heads.

examples:
  tr2 prompts --clip-weights ~/weights/ViT-B-32-openai.bin --out text_table.npz
  tr2 prompts --model tr2-small --random-init --out /tmp/table.npz   # tests only
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default="tr2", help="model config name or YAML path (default: tr2)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model config override, e.g. guidance.prompt='a photo of a person {predicate} "
        "a {object}' (repeatable)",
    )
    parser.add_argument(
        "--clip-weights",
        metavar="PATH_OR_TAG",
        help="open_clip checkpoint file or cached tag (default: clip.pretrained of the config)",
    )
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="random CLIP weights: for tests and the synthetic demo only (loud warning)",
    )
    parser.add_argument("--out", required=True, help="output .npz path")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--batch-size", type=int, default=128, help="prompts per forward")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import open_clip

    from tr2_core.errors import WeightsError
    from tr2_core.models.guidance import build_text_table, save_text_table
    from tr2_core.models.model_config import load_model_config
    from tr2_core.models.pair_features import create_clip
    from tr2_core.outputs import check_output_files

    check_output_files({"--out": args.out}, inputs=[args.clip_weights])
    cfg = load_model_config(args.model, args.overrides)
    if args.random_init:
        from tr2_core.run import announce_random_init

        announce_random_init()
    model = create_clip(cfg.clip, random_init=args.random_init, pretrained=args.clip_weights)
    model.to(args.device)
    tokenizer = open_clip.get_tokenizer(cfg.clip.model_name)
    source = args.clip_weights or cfg.clip.pretrained or ""
    table = build_text_table(
        model,
        tokenizer,
        cfg.guidance,
        clip_name=cfg.clip.model_name,
        clip_weights="random-init" if args.random_init else source,
        batch_size=args.batch_size,
    )
    if table.dim != cfg.representation.union_dim:
        raise WeightsError(
            f"CLIP text width {table.dim} differs from representation.union_dim "
            f"{cfg.representation.union_dim} of model {cfg.name!r}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_text_table(out, table)
    print(
        f"wrote {out}: table {tuple(table.table.shape)} from {cfg.clip.model_name} "
        f"({table.clip_weights or 'no weights'}; text tower sha256 {table.text_tower_sha256[:12]})"
    )
    return 0
