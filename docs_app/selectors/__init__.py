"""Reads, by area: library, viewer, answers, retrieval, audit and system. Views (and services that need a read)
call these; they write nothing. Who may see what is decided in services.access, whose querysets they build on.
"""
