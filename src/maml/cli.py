"""`python -m maml <command>`: the library's steps from the shell (Snakemake rules call these).

This module parses the command line; `maml.commands` does what each command says.
`train` accepts the reference reproduction's flags (`--n_way --k_spt --k_query --task_num
--glob_update_step --glob_update_step_test --glob_meta_lr --glob_base_lr --epochs
--use_gpu`) as well as `--config settings.yaml` and `--preset`.
"""

from __future__ import annotations

import argparse
import sys

from maml.commands import (DEFAULT_DATA, DEFAULT_OUTPUT, DEFAULT_RESULTS, RESOURCES,
                           cmd_check_yaml, cmd_compare_curve, cmd_evaluate, cmd_fetch,
                           cmd_lake_runs, cmd_predict, cmd_prepare, cmd_preprocess,
                           cmd_readme_tables, cmd_split, cmd_status, cmd_train)
from maml.datasets import OMNIGLOT
from maml.settings import DEFAULTS, INDEPENDENT, METHODS, QUERY_MODES, SPLITS


def seed_number(text: str) -> int:
    """A random seed: numpy's generators take integers from 0 up."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"a seed is 0 or more, got {value}")
    return value


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cell and hyperparameters (reference reproduction's names)")
    group.add_argument("--config", help="YAML file of settings (flags override it)")
    group.add_argument("--method", choices=METHODS,
                       help=f"{', '.join(METHODS)} (default {DEFAULTS['method']}): a family "
                       "of presets (see maml/presets.yaml)")
    group.add_argument("--preset", help="paper, reference or laptop: the method's preset of "
                       "that name (see maml/presets.yaml)")
    group.add_argument("--n_way", type=int)
    group.add_argument("--k_spt", type=int, help="k-shot: support images per class")
    group.add_argument("--k_query", type=int, help="query images per class in training")
    group.add_argument("--test_k_query", type=int, help="query images per class at test")
    group.add_argument("--task_num", type=int, help="meta-batch size")
    group.add_argument("--glob_update_step", type=int, help="inner steps in training")
    group.add_argument("--glob_update_step_test", type=int, help="inner steps at test")
    group.add_argument("--glob_meta_lr", type=float, help="outer (Adam) learning rate")
    group.add_argument("--glob_base_lr", type=float,
                       help="inner learning rate, on the mean cross-entropy")
    group.add_argument("--epochs", type=int, help="meta-iterations (one meta-batch each)")
    group.add_argument("--first_order", action="store_true", help="first-order MAML")
    group.add_argument("--seed", type=int)
    group.add_argument("--split_name", choices=SPLITS)
    group.add_argument("--val_every", type=int)
    group.add_argument("--val_tasks", type=int)
    group.add_argument("--checkpoint_every", type=int)
    group.add_argument("--use_gpu", action="store_true", help="same as --device gpu")
    group.add_argument("--device", help="cpu (default), gpu or gpu:N")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maml", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_data_commands, _model_commands, _use_commands, _upkeep_commands):
        add(sub)
    return parser


def _data_commands(sub) -> None:
    """fetch, preprocess, split, prepare."""
    from maml.data import ARCHIVES

    p = sub.add_parser("fetch", help="copy or download one archive, verified by md5")
    p.add_argument("name", choices=ARCHIVES)
    p.add_argument("--source", required=True, help="URL, file:// URL or folder")
    p.add_argument("--md5", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("preprocess", help="archives -> 28x28 images + metadata (.npz)")
    p.add_argument("--background", required=True)
    p.add_argument("--evaluation", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_preprocess)

    p = sub.add_parser("split", help=f"character split ({', '.join(SPLITS)}) as JSON")
    p.add_argument("--data", required=True)
    p.add_argument("--name", required=True, choices=SPLITS)
    p.add_argument("--seed", type=seed_number, default=1)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("prepare", help="fetch + preprocess + every split into --out-dir")
    p.add_argument("--source", default=None, help="default: the official address")
    p.add_argument("--md5", nargs=len(OMNIGLOT.archives),
                   metavar=tuple(archive.subset.upper() for archive in OMNIGLOT.archives),
                   help="md5 sums of the archives at --source (default: official ones)")
    p.add_argument("--out-dir", default=str(RESOURCES))
    p.set_defaults(func=cmd_prepare)


def _model_commands(sub) -> None:
    """train and evaluate, which take the settings flags."""
    for name, func, helptext in (("train", cmd_train, "meta-train one cell and seed"),
                                 ("evaluate", cmd_evaluate, "test a model on fixed tasks")):
        p = sub.add_parser(name, help=helptext)
        _add_setting_flags(p)
        p.add_argument("--data", default=str(DEFAULT_DATA))
        p.add_argument("--split-file", help="default: " + OMNIGLOT.split_files.format(
            split="<split>"))
        p.set_defaults(func=func)
    train_parser, eval_parser = sub.choices["train"], sub.choices["evaluate"]
    train_parser.add_argument("--out-dir", help=f"default: {DEFAULT_OUTPUT}/<split>/<method>/"
                              "<cell>/seed<N>-<hash of the training settings>")
    train_parser.add_argument("--state", help="checkpoint path, an .npz, with its progress "
                              "record <name>.json beside it (default: in --out-dir)")
    train_parser.add_argument("--resume", action="store_true",
                              help="continue from the checkpoint if it exists")
    eval_parser.add_argument("--model", required=True, help="model.npz from train")
    eval_parser.add_argument("--out", help=f"default: {DEFAULT_RESULTS}/<the model's folder>/"
                             "eval.json (never beside the model, where a committed result may "
                             "be)")
    eval_parser.add_argument("--num-tasks", type=int, default=600)
    eval_parser.add_argument("--test-seed", type=seed_number, default=0)
    eval_parser.add_argument("--part", choices=("test", "val"), default="test",
                             help="the split's part whose characters the tasks use (val: to "
                             "choose a setting; default test)")
    eval_parser.add_argument("--cell", help="test on another cell than the model's own, e.g. "
                             "20way5shot: the same ways with other shots, or fewer ways (the "
                             "first units of its output layer); queries per class: "
                             "--test_k_query, default the model's")
    eval_parser.add_argument("--queries", nargs="+", choices=QUERY_MODES, default=[INDEPENDENT],
                             help="also classify each query on its own, so (together: "
                             "batch-norm statistics over all queries, the paper's protocol; "
                             "support: the support set's; each: the support set with that "
                             f"query; default {INDEPENDENT})")


def _use_commands(sub) -> None:
    """predict and lake-runs: a trained model on anyone's images, on Lake's runs."""
    p = sub.add_parser("predict", help="adapt a model to a support set, classify query images")
    p.add_argument("--model", required=True, help="model.npz (with its train.json beside it)")
    p.add_argument("--support", required=True,
                   help="folder with one sub-folder of images per class, or CSV of path,label")
    p.add_argument("--query", required=True, nargs="+", help="query images and/or folders")
    p.add_argument("--steps", type=int, help="inner steps (default: the model's test steps)")
    p.add_argument("--inner-lr", type=float, help="inner rate (default: the model's own)")
    p.add_argument("--queries", choices=QUERY_MODES, default=INDEPENDENT,
                   help=f"how queries are classified: {INDEPENDENT} (default) each on its own, "
                   "its answer independent of the other queries; together: all as one batch "
                   "(batch-norm statistics over them, the paper's protocol)")
    p.add_argument("--out", help="CSV file (default: standard output)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("lake-runs", help="score a 20-way model on Lake's 20 one-shot runs")
    p.add_argument("--model", required=True, help="model.npz (with its train.json beside it)")
    p.add_argument("--runs", required=True, help="all_runs.zip")
    p.add_argument("--md5", help="its md5 sum (default: the official file's)")
    p.add_argument("--steps", type=int, help="inner steps (default: the model's test steps)")
    p.add_argument("--out", help=f"default: {DEFAULT_RESULTS}/<the model's folder>/"
                   "lake_runs.json")
    p.set_defaults(func=cmd_lake_runs)


def _upkeep_commands(sub) -> None:
    """compare-curve, readme-tables, status, check-yaml."""
    p = sub.add_parser("compare-curve", help="does a rerun's checkpoint repeat a committed "
                       "curve? (exit status 1 and the first differing row if not, 2 if a file is "
                       "missing or not a checkpoint/curve)")
    p.add_argument("--state", required=True, help="checkpoint (results/state/.../<key>.npz)")
    p.add_argument("--curve", required=True, help="curve.csv of the committed run")
    p.set_defaults(func=cmd_compare_curve)

    p = sub.add_parser("readme-tables", help="copy the results tables into README.md and "
                       "docs/results.md between their markers (after an aggregate)")
    p.add_argument("--root", default=".", help="the repository (default: here)")
    p.add_argument("--results", default="results")
    p.add_argument("--check", action="store_true", help="only say whether the copies are current")
    p.set_defaults(func=cmd_readme_tables)

    p = sub.add_parser("status", help="training runs in progress: iterations done, CPU-hours, "
                       "machines (from their checkpoints' records under results/state/)")
    p.add_argument("--results", default="results")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("check-yaml", help="say which file and line of YAML files does not parse "
                       "(run.sh checks config files so, as Snakemake names neither)")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=cmd_check_yaml)


def main(argv=None) -> int:
    from maml.cpu import configure

    configure()  # before Paddle is imported
    args = build_parser().parse_args(argv)
    if getattr(args, "source", "") is None:
        from maml.data import OFFICIAL_SOURCE
        args.source = OFFICIAL_SOURCE
    from maml.data import DataError
    from maml.device import DeviceError
    from maml.files import FileFormatError, OverwriteError
    from maml.settings import SettingsError
    from maml.progress import DivergenceError

    try:
        args.func(args)
    except (DataError, DeviceError, DivergenceError, FileFormatError, OverwriteError,
            SettingsError) as error:  # one clear line
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: files are written whole or not at all
        hint = (" the last checkpoint is kept; the same command with --resume continues from it"
                if args.func is cmd_train else "")
        print(f"\ninterrupted; nothing half-written is left;{hint}", file=sys.stderr)
        return 130
    return 0
