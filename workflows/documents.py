"""API workflows for collections (screen 4), documents (screens 3, 5 and 7) and uploads
(screen 6)."""

from services import collections, documents, uploads
from workflows.declare import api_workflow

LIST_COLLECTIONS = api_workflow(collections.list_collections)
LOAD_COLLECTIONS = api_workflow(collections.collections_by_ids)
LOAD_COLLECTION_TOTALS = api_workflow(collections.collection_totals_by_ids)
CREATE_COLLECTION = api_workflow(collections.create_collection)
UPDATE_COLLECTION = api_workflow(collections.update_collection)
DELETE_COLLECTION = api_workflow(collections.delete_collection)

LIST_DOCUMENTS = api_workflow(documents.list_documents)
LOAD_DOCUMENTS = api_workflow(documents.documents_by_ids)
LOAD_DOCUMENT_TAGS = api_workflow(documents.tags_by_document_ids)
LOAD_DOCUMENT_ANNOTATIONS = api_workflow(documents.annotations_by_document_ids)
LIST_CHUNKS = api_workflow(documents.list_chunks)
LOAD_TAG_COUNTS = api_workflow(documents.tag_counts)
UPDATE_DOCUMENT = api_workflow(documents.update_document)
MOVE_DOCUMENTS = api_workflow(documents.move_documents)
DELETE_DOCUMENTS = api_workflow(documents.delete_documents)
OPEN_ORIGINAL = api_workflow(documents.open_original)
CREATE_DOWNLOAD_LINK = api_workflow(documents.create_download_link)

UPLOAD_DOCUMENTS = api_workflow(uploads.upload_documents)
CREATE_TEXT_DOCUMENT = api_workflow(uploads.create_text_document)
REQUIRE_UPLOADS = api_workflow(uploads.require_uploads)
