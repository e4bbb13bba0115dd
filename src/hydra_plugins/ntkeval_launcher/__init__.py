"""ntkeval's `local` and `slurm` Hydra launchers (conf/hydra/launcher/*.yaml): hydra-submitit-launcher's, except that
the command waits for every job and tells each fault in one line (ntkeval.jobs.submitit_jobs) instead of re-raising the
first failed job's traceback. Hydra accepts launchers only from the hydra_plugins namespace, hence this package;
jobs still run through the plugin's own `__call__` and `checkpoint` (requeue on preemption)."""

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher


class NtkevalLocalLauncher(LocalLauncher):
    def launch(self, job_overrides, initial_job_idx):
        from ntkeval.jobs.submitit_jobs import launch_and_wait  # imported on use: Hydra imports plugins at every start

        return launch_and_wait(self, job_overrides, initial_job_idx, cluster="the local launcher")


class NtkevalSlurmLauncher(SlurmLauncher):
    def launch(self, job_overrides, initial_job_idx):
        from ntkeval.jobs.submitit_jobs import launch_and_wait

        return launch_and_wait(self, job_overrides, initial_job_idx, cluster="Slurm")
