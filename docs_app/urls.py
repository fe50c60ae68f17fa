"""Every route of the app. Views are thin: check access through services.access, call a service or selector,
render."""

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import path
from django.views.generic import TemplateView

from docs_app.views import ask, audit, auth, collections, library, search, status, viewer

urlpatterns = [
    path("", library.library, name="library"),
    path("login/", auth.LoginView.as_view(), name="login"),
    path("logout/", auth.logout_view, name="logout"),
    path("password/", auth.PasswordChangeView.as_view(), name="password_change"),
    path("help/", login_required(TemplateView.as_view(template_name="help.html")), name="help"),
    path("collections/new/", collections.collection_new, name="collection_new"),
    path("collections/<int:pk>/", library.collection_detail, name="collection"),
    path("collections/<int:pk>/access/", collections.collection_access, name="collection_access"),
    path("collections/<int:pk>/upload/", library.upload, name="upload"),
    path("collections/<int:pk>/uploads/", library.upload_batch_new, name="upload_batch_new"),
    path("collections/<int:pk>/uploads/<int:batch_id>/", library.upload_batch, name="upload_batch"),
    path("collections/<int:pk>/status.json", library.collection_status, name="collection_status"),
    path("documents/<int:pk>/", viewer.document_view, name="document"),
    path("documents/<int:pk>/pages/<int:page>.png", viewer.page_image, name="page_image"),
    path("documents/<int:pk>/download/", viewer.download, name="download"),
    path("documents/<int:pk>/retry/", library.retry, name="retry"),
    path("documents/<int:pk>/delete/", library.delete, name="delete"),
    path("search/", search.search, name="search"),
    path("ask/", ask.ask_start, name="ask"),
    path("ask/<int:pk>/", ask.conversation_view, name="conversation"),
    path("ask/<int:pk>/questions/", ask.question_create, name="question_create"),
    path("answers/<int:pk>/stream/", ask.answer_stream, name="answer_stream"),
    path("audit/", audit.audit_list, name="audit"),
    path("audit/export.csv", audit.audit_export, name="audit_export"),
    path("status/", status.status_view, name="status"),
    path("admin/", admin.site.urls),
]
