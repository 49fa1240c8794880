ON_GPU = config["device"].startswith("gpu")
# One environment file serves every rule: the GPU one when the config asks for a GPU.
ENV = "../../envs/maml-gpu.yaml" if ON_GPU else "../../envs/maml-cpu.yaml"


wildcard_constraints:
    archive="images_background|images_evaluation",
    split="finn|lake",
    cell=CELL_PATTERN,
    seed=r"[0-9]+",


def settings_for(wildcards):
    return cell_settings(config, wildcards.cell, int(wildcards.seed))


def all_runs(filename):
    """`filename` of every run of the config, e.g. all eval.json files."""
    return expand(
        "results/runs/{split}/{cell}/seed{seed}/{filename}",
        split=config["split"],
        cell=config["cells"],
        seed=config["seeds"],
        filename=filename,
    )
