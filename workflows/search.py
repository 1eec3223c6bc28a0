"""API workflows for search (screen 8) and related documents (screen 7)."""

from services import search
from workflows.declare import api_workflow

SEARCH = api_workflow(search.search)
LOAD_RELATED_DOCUMENTS = api_workflow(search.related_documents)
