"""The BLAS thread counts of this process, as threadpoolctl reads them from the loaded libraries."""

from threadpoolctl import threadpool_info


def blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}
