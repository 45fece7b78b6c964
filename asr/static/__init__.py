"""Files the service (`asr.serve`) sends as they are: index.html, the page at GET /."""
