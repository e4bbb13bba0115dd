"""ntkeval's `local` and `slurm` Hydra launchers (conf/hydra/launcher/*.yaml): hydra-submitit-launcher's, except that
the command waits for every job and tells each fault in one line (ntkeval.jobs.submitit_jobs) instead of re-raising the
first failed job's traceback, that cells can be packed into jobs (`pack=row`: ntkeval.jobs.packing), and that a
job uses as many CPU threads as it was given (ntkeval.jobs.allocation). Hydra accepts
launchers only from the hydra_plugins namespace, hence this package; jobs still run through the plugin's own
`__call__` and `checkpoint` (requeue on preemption)."""

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher
from omegaconf import OmegaConf

# ntkeval's own launcher settings; never passed to submitit (ntkeval.jobs.submitit_jobs.OWN_KEYS)
OWN_SETTINGS = {
    "pack": "none",           # none: one job per cell; row: one job per model and train skill (one model load)
    "gpu_memory_gb": None,    # memory of the GPU a job gets (GiB); dry_run refuses jobs that cannot fit; null: unchecked
}


def _schema(queue_conf) -> dict:
    """submitit's queue settings plus ntkeval's, as a plain node (Hydra imports plugin modules outside sys.modules,
    where a dataclass defined here could not be resolved)."""
    return {**OmegaConf.to_container(OmegaConf.structured(queue_conf)), **OWN_SETTINGS}


ConfigStore.instance().store(group="hydra/launcher", name="ntkeval_submitit_local", provider="ntkeval",
                             node=_schema(LocalQueueConf))
ConfigStore.instance().store(group="hydra/launcher", name="ntkeval_submitit_slurm", provider="ntkeval",
                             node=_schema(SlurmQueueConf))


class NtkevalLocalLauncher(LocalLauncher):
    def __call__(self, *args, **kwargs):  # in the job's process: one cell
        from ntkeval.jobs.allocation import limit_threads

        limit_threads(self.params.get("cpus_per_task"))
        return super().__call__(*args, **kwargs)

    def launch(self, job_overrides, initial_job_idx):
        from ntkeval.jobs.submitit_jobs import launch_and_wait  # imported on use: Hydra imports plugins at every start

        return launch_and_wait(self, job_overrides, initial_job_idx, cluster="the local launcher")


class NtkevalSlurmLauncher(SlurmLauncher):
    def __call__(self, *args, **kwargs):  # in the job's process: one cell
        from ntkeval.jobs.allocation import limit_threads

        limit_threads(self.params.get("cpus_per_task"))
        return super().__call__(*args, **kwargs)

    def launch(self, job_overrides, initial_job_idx):
        from ntkeval.jobs.submitit_jobs import launch_and_wait

        return launch_and_wait(self, job_overrides, initial_job_idx, cluster="Slurm")
