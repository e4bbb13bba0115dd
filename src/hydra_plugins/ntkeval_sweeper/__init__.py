"""ntkeval's sweeper (hydra/sweeper=ntkeval, selected in conf/config.yaml): Hydra's basic sweeper, except that a
pair.train naming several skills (all, a group, a list) becomes one job per skill (ntkeval.pair_sweep), and the
jobs it launches are written to the sweep dir as grid.yaml, so the report knows the grid without a data set.
Hydra accepts sweepers only from the hydra_plugins namespace, hence this package; it imports nothing heavy."""

from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

GRID_FILE = "grid.yaml"  # in the sweep dir: every job's overrides, in launch order (ntkeval.report.sweep_grid)


# the basic sweeper's settings (a plain node: Hydra runs plugin modules outside sys.modules, where dataclasses fail)
# (grids: several grids in one sweep, each a mapping of key: values over params; ntkeval.pair_sweep.grid_jobs)
ConfigStore.instance().store(group="hydra/sweeper", name="ntkeval", provider="ntkeval", node={
    "_target_": "hydra_plugins.ntkeval_sweeper.NtkevalSweeper", "max_batch_size": None, "params": None,
    "grids": None})


class NtkevalSweeper(BasicSweeper):
    def __init__(self, max_batch_size=None, params=None, grids=None):
        super().__init__(max_batch_size, params)
        self.grids = grids

    def split_arguments(self, overrides, max_batch_size):  # BasicSweeper.sweep calls it on the instance
        # imported on use: Hydra imports every plugin at every start, and these pull in the data sets
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from ntkeval.build import make
        from ntkeval.pair_sweep import TrainSkills, expand_jobs, grid_jobs

        if self.grids:  # sweep() parsed params then the command line: the command line is what follows params
            command_line = [o.input_line for o in overrides[len(self.params):]]
            jobs = grid_jobs(OverridesParser.create(), self.params, self.grids, command_line)
        else:
            (jobs,) = BasicSweeper.split_arguments(overrides, None)
        loader = self.hydra_context.config_loader
        jobs = expand_jobs(jobs, TrainSkills(lambda job: loader.load_sweep_config(self.config, job), make))
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create([list(job) for job in jobs]), sweep_dir / GRID_FILE)
        return list(BasicSweeper.split_overrides_to_chunks(jobs, max_batch_size))
