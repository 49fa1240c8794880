"""What each `python -m maml` command does, given its parsed arguments (maml.cli parses
them): fetch, preprocess, split, prepare, train, evaluate, predict, lake-runs, status,
compare-curve, readme-tables, check-yaml."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from maml.datasets import OMNIGLOT, dataset_of
from maml.files import refuse_writing_inputs
from maml.settings import (QUERY_MODE_NAMES, SettingsError, check_budget, parse_cell,
                           read_yaml, resolve)

# Omniglot's files (maml.datasets), where the pipeline and `prepare` put them.
DEFAULT_DATA = Path(OMNIGLOT.data_file)
RESOURCES = DEFAULT_DATA.parent
# Where `train` writes without --out-dir: outside results/, whose runs are the pipeline's
# (committed) and must not be overwritten by an experiment from the shell; git ignores it.
DEFAULT_OUTPUT = Path("output/runs")
# Where `evaluate` and `lake-runs` write without --out: never beside the model, whose folder
# may hold a committed result of the same name.
DEFAULT_RESULTS = Path("output/evaluations")


def default_result_path(model, name: str) -> Path:
    """output/evaluations/<the model's folder, relative to here where it can be>/<name>."""
    folder = Path(model).resolve().parent
    try:
        relative = folder.relative_to(Path.cwd().resolve())
    except ValueError:
        relative = Path(*folder.parts[1:])
    return DEFAULT_RESULTS / relative / name


def _flag_settings(args) -> dict:
    """The settings given as command-line flags (None where not given)."""
    return {
        "n_way": args.n_way, "k_shot": args.k_spt,
        "k_query": args.k_query, "meta_batch": args.task_num,
        "inner_steps": args.glob_update_step, "test_inner_steps": args.glob_update_step_test,
        "meta_lr": args.glob_meta_lr, "inner_lr": args.glob_base_lr,
        "iterations": args.epochs, "seed": args.seed, "split": args.split_name,
        "test_k_query": args.test_k_query, "val_every": args.val_every,
        "val_tasks": args.val_tasks,
        "checkpoint_every": args.checkpoint_every,
        "device": "gpu" if args.use_gpu else args.device,
        "first_order": True if args.first_order else None,
        "method": args.method, "preset": args.preset,
    }


def _settings_from(args) -> dict:
    """Preset < config file < command-line flags."""
    file_settings = {}
    if args.config:
        file_settings = read_yaml(args.config) or {}
        if not isinstance(file_settings, dict):
            raise SettingsError(f"{args.config}: a YAML mapping of settings (key: value lines) "
                                f"was expected, not a {type(file_settings).__name__}")
    flags = _flag_settings(args)
    merged = {**file_settings, **{k: v for k, v in flags.items() if v is not None}}
    n_way, k_shot = merged.pop("n_way", 5), merged.pop("k_shot", 1)
    preset = merged.get("preset")
    method = merged.pop("method", None)
    for key in ("n_way", "k_shot", "preset"):
        merged.pop(key, None)
    settings = resolve(n_way, k_shot, preset, method, **merged)
    check_budget(settings, merged)
    return settings


def _split_path(args, settings) -> Path:
    return Path(args.split_file
                or dataset_of(settings["split"]).split_files.format(split=settings["split"]))


def cmd_fetch(args) -> None:
    from maml.data import fetch_archive, local_archive

    refuse_writing_inputs({"--out": args.out}, {"--source": local_archive(args.source,
                                                                          args.name)})
    fetch_archive(args.name, args.source, args.md5, args.out)


def cmd_preprocess(args) -> None:
    from maml.data import preprocess, save_characters

    refuse_writing_inputs({"--out": args.out}, {"--background": args.background,
                                                "--evaluation": args.evaluation})
    data = preprocess({"images_background": args.background,
                       "images_evaluation": args.evaluation})
    save_characters(data, args.out)


def cmd_split(args) -> None:
    from maml.data import load_characters, make_split, save_split

    refuse_writing_inputs({"--out": args.out}, {"--data": args.data})
    save_split(make_split(load_characters(args.data), args.name, args.seed), args.out)


def cmd_prepare(args) -> None:
    """Fetch, preprocess and split in one go, for use without Snakemake; nothing to do where
    the folder already holds the same archives (by md5) and what is made from them."""
    from maml.data import (ARCHIVES, OFFICIAL_MD5, fetch_archive, load_characters, local_archive,
                           make_split, md5sum, preprocess, save_characters, save_split)

    md5 = dict(OFFICIAL_MD5)
    md5.update({name: value for name, value in zip(ARCHIVES, args.md5 or [])})
    out = Path(args.out_dir)
    refuse_writing_inputs({f"--out-dir's {name}.zip": out / f"{name}.zip" for name in ARCHIVES},
                          {"--source": [local_archive(args.source, name) for name in ARCHIVES]})
    made = [out / Path(OMNIGLOT.data_file).name,
            *(out / "splits" / f"{name}.json" for name in OMNIGLOT.splits)]
    if all(path.is_file() for path in made) and all(
            (out / f"{name}.zip").is_file() and md5sum(out / f"{name}.zip") == md5[name]
            for name in ARCHIVES):
        data = load_characters(made[0])
        print(f"{out}: already prepared ({data.num_characters} characters, splits "
              f"{', '.join(OMNIGLOT.splits)}; the archives' md5 sums match). Delete it to "
              "prepare again.")
        return
    out.mkdir(parents=True, exist_ok=True)
    # fetched beside the folder first, moved in only once they preprocess: archives that fail
    # (e.g. the right md5 of the wrong file) never reach the folder the pipeline reads
    with tempfile.TemporaryDirectory(dir=out, prefix=".prepare-") as staging:
        archives = {name: fetch_archive(name, args.source, md5[name],
                                        Path(staging) / f"{name}.zip") for name in ARCHIVES}
        data = preprocess(archives)
        for name, path in archives.items():
            os.replace(path, out / f"{name}.zip")
    save_characters(data, made[0])
    for name in OMNIGLOT.splits:
        save_split(make_split(data, name), out / "splits" / f"{name}.json")
    print(f"{out}: prepared {data.num_characters} characters from {', '.join(ARCHIVES)} "
          f"(md5 checked) and the splits {', '.join(OMNIGLOT.splits)}")


def cmd_status(args) -> None:
    """The training runs in progress under --results: their checkpoints' records."""
    from maml.progress import progress_markdown

    states = sorted(Path(args.results, "state").rglob("*.json"))
    runs = [(str(path.parent.relative_to(Path(args.results, "state"))),
             path.with_suffix(".npz"), False) for path in states]
    text = progress_markdown(runs)
    print("\n".join(line for line in text.splitlines() if not line.startswith("#")).strip())


def cmd_train(args) -> None:
    from maml.train import train

    from maml.files import read_json
    from maml.identity import fingerprint

    settings = _settings_from(args)
    # keyed by the training settings, so that a run with other settings never replaces it
    out = Path(args.out_dir or DEFAULT_OUTPUT / settings["split"] / settings["method"] /
               f"{settings['n_way']}way{settings['k_shot']}shot" /
               f"seed{settings['seed']}-{fingerprint(settings)}")
    if args.state is not None:
        state = Path(args.state)
        if state.suffix != ".npz":
            raise SettingsError(f"--state {state}: a checkpoint is an .npz file (its progress "
                                f"record goes beside it as {state.stem}.json)")
        record = state.with_suffix(".json")
        if record.exists() and not (isinstance(read_json(record), dict)
                                    and "iteration" in read_json(record)):
            raise SettingsError(f"--state {state}: {record}, where its progress record goes, "
                                "is another file; name another --state")
    split_path = _split_path(args, settings)
    refuse_writing_inputs(
        {"--state": args.state, **{f"--out-dir's {name}": out / name
                                   for name in ("model.npz", "curve.csv", "train.json")}},
        {"--data": args.data, "--split-file": split_path, "--config": args.config})
    summary = train(settings, args.data, split_path, out, state_path=args.state,
                    resume=args.resume)
    print(f"best validation accuracy {summary['best_val_accuracy']:.4f}; model in {out}")


# What `evaluate` may change about a trained model: test-time settings only.
TEST_TIME_FLAGS = ("test_inner_steps", "test_k_query", "device")


def cmd_evaluate(args) -> None:
    """Evaluate with the model's own training settings (its train.json); flags may change
    test-time settings only, and any other flag must agree with the model."""
    from maml.evaluate import evaluate
    from maml.files import write_json
    from maml.model_file import read_training_record
    from maml.settings import SettingsError, validate

    settings = dict(read_training_record(args.model)[0])  # the model is read once, to evaluate
    if args.config:
        raise SettingsError("evaluate: --config does not apply; a model is evaluated with the "
                            "settings in its train.json")
    for key, value in _flag_settings(args).items():
        if value is None:
            continue
        if key in TEST_TIME_FLAGS:
            settings[key] = value
        elif settings.get(key) != value:
            raise SettingsError(
                f"evaluate: --{key} {value} does not match the model, trained with {key} = "
                f"{settings.get(key)!r} (its train.json); evaluation takes the cell, method and "
                f"inner loop from the model, flags change only {', '.join(TEST_TIME_FLAGS)}")
    validate(settings)  # e.g. --glob_update_step_test -1, --test_k_query 20 with 1 shot
    name = "eval.json" if args.part == "test" else f"eval_{args.part}.json"
    if args.cell:
        name = f"{Path(name).stem}_on-{args.cell}.json"
    out = Path(args.out) if args.out else default_result_path(args.model, name)
    split_path = _split_path(args, settings)
    refuse_writing_inputs({"--out": out}, {"--model": args.model,
                                           "the model's train.json": Path(args.model).parent
                                           / "train.json",
                                           "--data": args.data, "--split-file": split_path})
    tested_on = None
    if args.cell:
        n_way, k_shot = parse_cell(args.cell)
        tested_on = (n_way, k_shot, settings["test_k_query"])
    result = evaluate(args.model, args.data, split_path, settings,
                      args.num_tasks, args.test_seed, part=args.part, query_modes=args.queries,
                      tested_on=tested_on)
    write_json(out, result)
    print(f"trained on {result['trained_on']}, tested on {result['tested_on']}, "
          f"{args.part} part: "
          f"{100 * result['accuracy']:.2f} +/- {100 * result['ci95']:.2f} % "
          f"({result['num_tasks']} tasks, queries together)")
    for mode, numbers in result["query_modes"].items():
        print(f"  {QUERY_MODE_NAMES[mode]}: {100 * numbers['accuracy']:.2f} +/- "
              f"{100 * numbers['ci95']:.2f} %")
    print(f"written to {out}")


def cmd_predict(args) -> None:
    from maml.files import write_text
    from maml.predict import predict, predictions_csv, query_images, support_set

    if args.out:
        source = Path(args.support)
        refuse_writing_inputs({"--out": args.out}, {
            "--model": args.model, "the model's train.json": Path(args.model).parent
            / "train.json", "--support": [source, *support_set(source)[0]],
            "--query": [*map(Path, args.query), *query_images(args.query)]})
    classes, queries, probabilities = predict(args.model, args.support, args.query,
                                              args.steps, args.inner_lr, args.queries)
    text = predictions_csv(classes, queries, probabilities)
    if args.out:
        write_text(args.out, text)
        print(f"{len(queries)} predictions over {len(classes)} classes in {args.out}")
    else:
        sys.stdout.write(text)


def cmd_lake_runs(args) -> None:
    from maml.files import write_json
    from maml.lake import check_lake_protocol, read_runs, score_model
    from maml.predict import load_model

    out = Path(args.out) if args.out else default_result_path(args.model, "lake_runs.json")
    refuse_writing_inputs({"--out": out}, {"--model": args.model, "--runs": args.runs,
                                           "the model's train.json": Path(args.model).parent
                                           / "train.json"})
    model = load_model(args.model)
    check_lake_protocol(model, args.model)
    result = score_model(model, read_runs(args.runs, args.md5), args.steps)
    write_json(out, result)
    for mode, scored in result["query_modes"].items():
        print(f"Lake's {scored['runs']} one-shot runs, {QUERY_MODE_NAMES[mode]}: error "
              f"{scored['error_percent']:.2f}%")
    print(f"written to {out}")


def cmd_compare_curve(args) -> None:
    """Exit status as cmp's: 0 identical, 1 the curves differ, 2 a file is missing or wrong."""
    from maml.files import FileFormatError
    from maml.train import Checkpoint, first_curve_difference

    for path in (args.state, args.curve):
        if not Path(path).is_file():
            raise FileFormatError(f"{path}: no such file")
    if Path(args.state).suffix == ".csv" and Path(args.curve).suffix == ".npz":
        raise FileFormatError(f"--state {args.state} is a .csv and --curve {args.curve} an "
                              ".npz: the two arguments look swapped (--state takes the "
                              "checkpoint, --curve the committed curve.csv)")
    checkpoint = Checkpoint(args.state)
    rows = checkpoint.curve()
    difference = first_curve_difference(rows, args.curve)
    if difference:
        raise SystemExit(f"differ: {difference}{_machines_note(checkpoint, args.curve)}")
    print(f"identical: the checkpoint's {len(rows)} rows equal the first {len(rows)} rows of "
          f"{args.curve} (iteration, loss, accuracy, val_accuracy; elapsed_s not compared)")


def _machines_note(checkpoint, curve_path) -> str:
    """Where the two curves were made, if both say (segments of the checkpoint and of the
    train.json beside the curve), and what a difference then means."""
    from maml.files import read_json

    summary = Path(curve_path).parent / "train.json"
    ours = {s["machine"]["kind"] for s in checkpoint.read()[1].get("segments", [])}
    theirs = ({s["machine"]["kind"] for s in read_json(summary).get("segments", [])}
              if summary.is_file() else set())
    if not ours or not theirs:
        return ""
    if ours == theirs:
        return f"\nboth made on {', '.join(sorted(ours))}: the same CPU kind, so a real difference"
    return (f"\nthe checkpoint was made on {', '.join(sorted(ours))}, the curve on "
            f"{', '.join(sorted(theirs))}: other CPU kinds take other float32 paths (MKL, "
            "Paddle's kernels), so curves part from iteration 1 or 2 without any bug; compare "
            "accuracies within their intervals instead")


def cmd_readme_tables(args) -> None:
    """Copy the committed results tables into the README and the docs pages that show them
    (readme_blocks.DOCUMENT_TABLES), in place of their older copies."""
    from maml.files import FileFormatError, write_text
    from maml.readme_blocks import DOCUMENT_TABLES, readme_with_results

    stale = []
    for name, tables in DOCUMENT_TABLES.items():
        document = Path(args.root) / name
        if not document.is_file():
            raise FileFormatError(f"{document}: no such file")
        old = document.read_text()
        new = readme_with_results(old, args.results, tables)
        if new != old:
            stale.append(document)
            if not args.check:
                write_text(document, new)
        status = ("already up to date" if new == old
                  else "older tables" if args.check else "tables updated")
        print(f"{document}: {status}")
    if args.check and stale:
        raise SystemExit(f"{', '.join(map(str, stale))} show older tables than "
                         f"{args.results}/: run python -m maml readme-tables")


def cmd_check_yaml(args) -> None:
    for path in args.files:
        read_yaml(path)


