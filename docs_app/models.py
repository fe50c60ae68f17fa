"""The source of truth. Chroma is derived from Chunk rows; Redis only carries messages.

Models hold data and invariants only; workflows live in docs_app.services.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower


class Collection(models.Model):
    """A legal matter, a patient file, a case: the unit that access is granted on."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer (ask and read)"
    CONTRIBUTOR = "contributor", "Contributor (also upload)"
    MANAGER = "manager", "Manager (also delete and grant)"
    # An ethical wall: overrides every grant the user holds on the collection, directly or through a group.
    DENY = "deny", "Ethical wall (no access)"


class Grant(models.Model):
    """A role on a collection for exactly one user or one group."""

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="grants")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="doc_grants"
    )
    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="doc_grants")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False, group__isnull=True) | Q(user__isnull=True, group__isnull=False)),
                name="grant_user_xor_group",
            ),
            models.UniqueConstraint(fields=["collection", "user"], condition=Q(user__isnull=False),
                                    name="grant_one_per_user"),
            models.UniqueConstraint(fields=["collection", "group"], condition=Q(group__isnull=False),
                                    name="grant_one_per_group"),
        ]

    def __str__(self) -> str:
        who = self.user or self.group
        return f"{who} {self.role} on {self.collection}"


class DocumentStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    EXTRACTING = "extracting", "Extracting text"
    EMBEDDING = "embedding", "Indexing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class Document(models.Model):
    collection = models.ForeignKey(Collection, on_delete=models.PROTECT, related_name="documents")
    title = models.CharField(max_length=500)
    original_name = models.CharField(max_length=500)
    # A generated name: the user's file name never reaches the file system.
    stored_name = models.CharField(max_length=100, unique=True)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField()
    page_count = models.PositiveIntegerField(null=True, blank=True)
    pages_done = models.PositiveIntegerField(default=0)
    # Pages without a usable text layer that the latest ingestion sent to OCR, and how many it has read so far
    # (the library's progress: OCR costs about a hundred times a text layer).
    ocr_page_count = models.PositiveIntegerField(default=0)
    ocr_pages_done = models.PositiveIntegerField(default=0)
    # The passages of the current version, written with them: how large a reader's scope is (which decides how
    # it is searched) is a sum over documents, not a count over a million chunk rows (~11 ms each at 1M).
    chunk_count = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=DocumentStatus.choices, default=DocumentStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)  # percent, for the progress bar
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Bumped on every (re)ingestion; chunk ids carry it, so a stale index entry can never pose as current.
    version = models.PositiveIntegerField(default=0)
    # The ingestion run working on it ("<host>:<pid>:<nonce>", empty when none) and that run's last sign of life:
    # one run at a time, and a run whose host died is noticed (services.ingest, services.reconcile).
    run_owner = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # What the first pages say the document is (pipeline.metadata.DocumentMetadata.as_dict(): title, type,
    # parties, short names, effective date, authors, year), extracted at ingest; the filterable ones again as
    # columns. `names` holds every name it may be called by, folded, for the document-names keyword index.
    metadata = models.JSONField(default=dict, blank=True)
    doc_type = models.CharField(max_length=100, blank=True)
    effective_date = models.DateField(null=True, blank=True)
    year = models.PositiveSmallIntegerField(null=True, blank=True)
    names = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["collection", "sha256"], name="document_unique_bytes_per_collection"),
        ]
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        # Not the title: str() reaches admin pages, logs and messages that anyone administering may read.
        return f"document #{self.pk}"

    @property
    def is_terminal(self) -> bool:
        return self.status in {DocumentStatus.READY, DocumentStatus.FAILED}

    @property
    def metadata_title(self) -> str:
        """The title printed in the document, when one was found at ingest."""
        return str(self.metadata.get("title") or "") if isinstance(self.metadata, dict) else ""

    @property
    def display_title(self) -> str:
        """The title printed in the document when one was found, else the one made from its file name."""
        return self.metadata_title or self.title


class UploadBatch(models.Model):
    """One upload as the person made it (the files chosen at once, a folder, an archive), kept so its report can
    be opened again after a reload: every file's outcome, rejected files and their reasons included."""

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="upload_batches")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["collection", "-created_at"], name="uploadbatch_recent")]

    def __str__(self) -> str:
        return f"upload #{self.pk}"


class UploadItem(models.Model):
    """One file's outcome in an upload batch. Its row, not a JSON list in the batch: the browser sends a batch's
    files in parallel requests, each adding its own rows. Erasing the document erases the name kept here."""

    batch = models.ForeignKey(UploadBatch, on_delete=models.CASCADE, related_name="items")
    name = models.CharField(max_length=500)  # the file's own name (an archive member's, without its folders)
    archive = models.CharField(max_length=500, blank=True)  # "contracts.zip/2010" for an archive member
    status = models.CharField(max_length=16)  # queued, duplicate, rejected (services.documents.UploadOutcome)
    reason = models.CharField(max_length=500, blank=True)
    document = models.ForeignKey("Document", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["batch_id", "id"]

    def __str__(self) -> str:
        return f"{self.batch_id}: {self.status}"


class PageSource(models.TextChoices):
    TEXT = "text", "Text layer"
    OCR = "ocr", "OCR"
    NONE = "none", "No text"


class Page(models.Model):
    """How one page's text was obtained, written with the document's chunks. For OCR pages also Tesseract's
    confidence and the word boxes a highlight is drawn from: an image-only page has no text layer to find a
    passage in. No text is kept here (the chunks hold it), so erasing chunks erases the words."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="pages")
    number = models.PositiveIntegerField()  # 1-based
    source = models.CharField(max_length=8, choices=PageSource.choices)
    ocr_confidence = models.FloatField(null=True, blank=True)  # mean word confidence, 0-100
    # OCR was needed but did not finish (time budget, a crash, OCR unavailable): the page needs a person's eyes.
    ocr_failed = models.BooleanField(default=False)
    note = models.CharField(max_length=300, blank=True)  # why OCR gave no text, when it did not
    # [[start, end, x0, y0, x1, y1], ...]: each word's characters in the page's text (the offsets chunks use) and
    # its box in PDF points on the unrotated page.
    ocr_words = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["document_id", "number"]
        constraints = [models.UniqueConstraint(fields=["document", "number"], name="page_unique_number")]
        indexes = [models.Index(fields=["source", "ocr_confidence"])]

    def __str__(self) -> str:
        return f"{self.document_id} p.{self.number} ({self.source})"


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    page = models.PositiveIntegerField()  # 1-based; a chunk never crosses a page
    # Offsets into the page's text as extracted (what the page renderer rebuilds to highlight); `text` is that
    # span normalised for search (pipeline.normalize: ligatures, soft hyphens, line-end hyphenation), so its
    # length may differ from char_end - char_start.
    char_start = models.PositiveIntegerField()
    char_end = models.PositiveIntegerField()
    text = models.TextField()
    heading = models.CharField(max_length=200, blank=True)  # the section heading it sits under
    # float32 vector: lets the vector index be rebuilt (or compacted) from the DB without the model.
    embedding = models.BinaryField()
    # Words the keyword index filters on before it ranks (see chunk_keyword_scope); a document never moves to
    # another collection, so they hold for the chunk's life.
    keyword_scope = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["document_id", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["document", "ordinal"], name="chunk_unique_ordinal")]

    def __str__(self) -> str:
        return self.vector_id

    @property
    def vector_id(self) -> str:
        return chunk_vector_id(document_id=self.document_id, version=self.document.version, ordinal=self.ordinal)


# The first chunks of a document (title block, parties) carry their ordinal as a scope word: document routing
# ranks them alone.
SCOPE_HEAD_CHUNKS = 8


def chunk_keyword_scope(*, collection_id: int, document_id: int, ordinal: int) -> str:
    """The chunk's scope words in the keyword index: "c<collection> d<document>", plus "o<ordinal>" for a
    document's first chunks. A query names the collections (or documents) it may read among them, so the
    full-text index intersects posting lists and ranks only passages the reader may see, instead of ranking
    every match in the firm and filtering afterwards."""
    words = f"c{collection_id} d{document_id}"
    return f"{words} o{ordinal}" if ordinal < SCOPE_HEAD_CHUNKS else words


def chunk_vector_id(*, document_id: int, version: int, ordinal: int) -> str:
    return f"{document_id}:{version}:{ordinal}"


def chunk_vector_key(vector_id: str) -> tuple[int, int, int] | None:
    """(document id, version, ordinal) of a vector id written by chunk_vector_id; None for anything else."""
    try:
        document_id, version, ordinal = (int(part) for part in vector_id.split(":"))
    except ValueError:
        return None
    return document_id, version, ordinal


class Conversation(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=300)
    # The collections the person chose to ask about; access is still re-checked on every question.
    collections = models.ManyToManyField(Collection, blank=True, related_name="+")
    # Narrower still: the documents chosen ("ask this document"); empty means every document of the collections.
    documents = models.ManyToManyField(Document, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title


class AnswerStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    STREAMING = "streaming", "Streaming"
    DONE = "done", "Done"
    ABSTAINED = "abstained", "Not enough evidence"
    FAILED = "failed", "Failed"


class Question(models.Model):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="questions")
    asked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    text = models.TextField()
    # The asker's address, for the audit event the answer worker writes on the asker's behalf.
    client_address = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.text[:80]


class Answer(models.Model):
    question = models.OneToOneField(Question, on_delete=models.CASCADE, related_name="answer")
    status = models.CharField(max_length=16, choices=AnswerStatus.choices, default=AnswerStatus.PENDING)
    text = models.TextField(blank=True)
    error = models.TextField(blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    # The sources as shown to the model, frozen at answer time: [{"number", "chunk_id", "document_id", "page", ...}]
    sources = models.JSONField(default=list)
    # Runs started on this answer. A run that kills its worker (a native crash in the model) is redelivered;
    # the counter stops that from looping: past ANSWER_MAX_ATTEMPTS the answer fails with its reason.
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    # When the last run began writing it: finished_at - started_at is what one answer costs a worker, which
    # back-pressure turns into a waiting time (selectors.answers.answer_wait_estimate_s).
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"answer to {self.question_id}"

    @property
    def is_finished(self) -> bool:
        """Done, abstained or failed: no run will write to it again."""
        return self.status in {AnswerStatus.DONE, AnswerStatus.ABSTAINED, AnswerStatus.FAILED}


class Citation(models.Model):
    answer = models.ForeignKey(Answer, on_delete=models.CASCADE, related_name="citations")
    number = models.PositiveSmallIntegerField()  # the [n] in the answer text
    # SET_NULL: erasing a document must not erase what was once answered, only the link to the erased text.
    chunk = models.ForeignKey(Chunk, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    document = models.ForeignKey(Document, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    page = models.PositiveIntegerField()

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["answer", "number"], name="citation_unique_number")]

    def __str__(self) -> str:
        return f"[{self.number}] p.{self.page}"


class AuditEvent(models.Model):
    """Append-only and hash-chained. The database refuses UPDATE, DELETE and REPLACE (see services.audit)."""

    created_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False,
        related_name="+",
    )
    # Kept as text too: the user row may be renamed or removed, the record must still say who it was.
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    collection_id_ref = models.BigIntegerField(null=True, blank=True, db_index=True)
    document_id_ref = models.BigIntegerField(null=True, blank=True, db_index=True)
    client_address = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=32, default="ok")
    details = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    # 1: plain SHA-256 (events written before the key existed); 2: HMAC-SHA-256 with the audit key.
    chain_version = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["id"]
        permissions = [("review_audit", "Can review and export the audit log")]
        # The audit page filters by user name (any case) and by date: at a million events a scan is too slow.
        indexes = [
            models.Index(Lower("actor_name"), name="auditevent_actor_lower"),
            models.Index(fields=["created_at"], name="auditevent_created_at"),
            # The name filters find a question's events by the question's and its answer's ids.
            models.Index(fields=["target_type", "target_id"], name="auditevent_target"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} by {self.actor_name or '-'}"


class AuditVerification(models.Model):
    """How far verification of the audit chain has got (one row, see docs_app.services.audit_verification): the
    head verified back to the first event, and the current pass re-verifying old events."""

    head_id = models.BigIntegerField(default=0)
    head_hash = models.CharField(max_length=64, default="0" * 64)
    head_version = models.PositiveSmallIntegerField(default=1)  # the chain version of the head event
    head_count = models.BigIntegerField(default=0)
    sweep_id = models.BigIntegerField(default=0)
    sweep_hash = models.CharField(max_length=64, default="0" * 64)
    sweep_version = models.PositiveSmallIntegerField(default=1)
    sweep_count = models.BigIntegerField(default=0)
    sweep_started_at = models.DateTimeField(null=True, blank=True)
    full_at = models.DateTimeField(null=True, blank=True)  # start of the last complete pass
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"verified through #{self.head_id}"
