"""Run by tests/integration/test_backup.py inside another instance (its settings from the environment, e.g. one a
restore just filled): asks a question as a user through the answer service, in this process, and prints one JSON
line with the answer's status, its sources and its citations (document and page)."""

import json
import sys

import django


def main() -> None:
    django.setup()
    from django.contrib.auth.models import User

    from docs_app.models import Answer, Citation
    from docs_app.services.actor import Actor
    from docs_app.services.answering import answer_generate, conversation_start

    username, question = sys.argv[1], sys.argv[2]
    user = User.objects.get(username=username)
    answer = conversation_start(actor=Actor(user=user, address="127.0.0.1"), text=question, collection_ids=None)
    answer_generate(answer_id=answer.pk)
    answer = Answer.objects.get(pk=answer.pk)
    print(json.dumps({
        "status": answer.status,
        "error": answer.error,
        "sources": [[s["document_id"], s["page"], s["chunk_id"]] for s in answer.sources],
        "citations": [[c.number, c.document_id, c.page] for c in Citation.objects.filter(answer=answer)],
    }))


if __name__ == "__main__":
    main()
