"""A PDF document's pages as images, for the kiosks of the meeting's invited sites."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from confbridge.auth.dependencies import PrincipalDep
from confbridge.deps import SessionDep, SettingsDep
from confbridge.errors import NotFound
from confbridge.pagination import IdPath
from confbridge.records import pdf_pages
from confbridge.records.documents_router import readable_document
from confbridge.records.models import Document
from confbridge.records.router import document_store

router = APIRouter(tags=["meeting record"])
# A page once drawn does not change: the hall's browser may keep it a while.
PAGE_CACHE_CONTROL = "private, max-age=3600"


class PageSizeRead(BaseModel):
    number: int = Field(description="1, 2, ...")
    width: int = Field(description="pixels")
    height: int = Field(description="pixels")


class DocumentPages(BaseModel):
    document_id: int
    name: str
    agenda_item_id: int | None
    total_pages: int = Field(description="pages in the PDF")
    page_count: int = Field(description=f"pages shown (at most {pdf_pages.MAX_PAGES})")
    pages: list[PageSizeRead]


def hall_document(
    document_id: IdPath, principal: PrincipalDep, session: SessionDep, settings: SettingsDep
) -> Document:
    """The document, for a terminal of a site invited to its meeting, within the retention
    period; 404 to anyone else. Pages are drawn for halls' screens; users download the file."""
    if principal.terminal is None:
        raise NotFound(f"document {document_id} does not exist")
    return readable_document(document_id, principal, session, settings)


HallDocument = Annotated[Document, Depends(hall_document)]


@router.get("/documents/{document_id}/pages", response_model=DocumentPages)
def document_pages(document: HallDocument, settings: SettingsDep) -> DocumentPages:
    """How many pages of a PDF document a hall's screen shows, and their sizes in pixels."""
    index = pdf_pages.page_index(document_store(settings), document)
    return DocumentPages(
        document_id=document.id,
        name=document.name,
        agenda_item_id=document.agenda_item_id,
        total_pages=index.total_pages,
        page_count=len(index.pages),
        pages=[
            PageSizeRead(number=number, width=size.width, height=size.height)
            for number, size in enumerate(index.pages, start=1)
        ],
    )


@router.get(
    "/documents/{document_id}/pages/{number}.png",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}}}},
)
def document_page(
    document: HallDocument,
    number: Annotated[int, Path(ge=1, le=pdf_pages.MAX_PAGES, description="1, 2, ...")],
    settings: SettingsDep,
) -> FileResponse:
    """Page `number` of a PDF document as a PNG image, drawn at 150 dpi (at most 2000 px)."""
    path = pdf_pages.page_png(document_store(settings), document, number)
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": PAGE_CACHE_CONTROL})
