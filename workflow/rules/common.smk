ON_GPU = config["device"].startswith("gpu")
# One environment file serves every rule: the GPU one when the config asks for a GPU.
ENV = "../../envs/maml-gpu.yaml" if ON_GPU else "../../envs/maml-cpu.yaml"


wildcard_constraints:
    archive="images_background|images_evaluation",
    split="finn|lake",
    cell=CELL_PATTERN,
    run=RUN_PATTERN,


def settings_for(wildcards):
    return run_settings(config, wildcards.cell, wildcards.run)


def all_runs(filename):
    """`filename` of every run of the config (grid, then extra runs), e.g. all eval.json files."""
    grid = [(cell, run_name(seed)) for cell in config["cells"] for seed in config["seeds"]]
    return [
        f"results/runs/{config['split']}/{cell}/{run}/{filename}"
        for cell, run in grid + extra_runs(config)
    ]
