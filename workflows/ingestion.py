"""The ingestion run (screen 6's per-file stages): one node per stage of `ingest_document`."""

from services import ingestion
from workflows.declare import run_workflow

INGEST_DOCUMENT = run_workflow(
    ingestion.INGEST_DOCUMENT,
    {
        "EXTRACTING": ingestion.extracting,
        "CHUNKING": ingestion.chunking_step,
        "INDEXING": ingestion.indexing,
        "EMBEDDING": ingestion.embedding,
        "SUMMARIZING": ingestion.summarizing,
        "TAGGING": ingestion.tagging,
    },
)
