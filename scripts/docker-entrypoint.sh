#!/bin/sh
# Every role of the image (web, workers, Chroma) creates its files readable by the app's user alone.
umask 077
exec "$@"
