"""Subcommand groups of the ``mer`` command line (see :mod:`mer_utils.cli`)."""


def report_unfinished(result) -> bool:
    """Print why a training command has no scores to show, and return True, when this process does not
    report (not the main process of a launch) or the run waits for folds other processes train."""
    from mer_utils.experts import distributed

    if not distributed.is_main_process():
        return True  # rank 0 reports for all processes
    if result.pending:
        print(f"run folder: {result.run_dir}\nfolds {list(result.pending)} are still to run (other --run-folds); "
              "the process that finishes the last fold writes metrics.json")
        return True
    return False
