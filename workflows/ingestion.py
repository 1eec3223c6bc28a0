"""The ingestion run (screen 6's per-file stages): one node per stage of `ingest_document`;
and reprocessing (screens 5 and 7), which queues a fresh run."""

from services import ingestion, reembedding
from workflows.declare import api_workflow, run_workflow

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

REPROCESS_DOCUMENT = api_workflow(ingestion.reprocess_document)
REPROCESS_DOCUMENTS = api_workflow(ingestion.reprocess_documents)

# After a change of embedding model: a workspace's documents get vectors of the new one.
REEMBED_WORKSPACE = run_workflow(
    reembedding.REEMBED_WORKSPACE, {"EMBEDDING": reembedding.reembedding}
)
