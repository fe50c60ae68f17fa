#!/usr/bin/env bash
# System packages the app needs: a Redis server, bubblewrap (the PDF children's sandbox: no network, own PID
# space, read-only file system; docs_app/pipeline/sandbox.py) and Tesseract's language data (the OCR of scanned
# pages reads <lang>.traineddata from tesseract-ocr-<lang>; tesseract-ocr brings osd.traineddata and the
# tesseract command for an administrator's checks) always, and, with --browser, Debian's Chromium and
# ChromeDriver for the browser tests. The OCR languages are those of DOCS_OCR_LANGUAGES (Tesseract's names joined
# by "+", default "eng"; Debian spells chi_sim as tesseract-ocr-chi-sim). Installed with apt-get when missing and
# we are root; otherwise we say
# exactly what to install.
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v tesseract >/dev/null || need+=(tesseract-ocr)
IFS=+ read -ra languages <<< "${DOCS_OCR_LANGUAGES:-eng}"
for language in "${languages[@]}"; do
  compgen -G "/usr/share/tesseract-ocr/*/tessdata/${language}.traineddata" >/dev/null \
    || need+=("tesseract-ocr-${language//_/-}")
done
if [[ "${1:-}" == "--browser" ]]; then
  [[ -x /usr/bin/chromium ]] || need+=(chromium)
  [[ -x /usr/bin/chromedriver ]] || need+=(chromium-driver)
fi
[[ ${#need[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "installing ${need[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
else
  echo "missing system packages: ${need[*]} — install them (e.g. sudo apt-get install ${need[*]}) and rerun" >&2
  exit 1
fi
