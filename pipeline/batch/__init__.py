"""``mien batch``: recognition over large photo collections on Ray Data (local by default, or a cluster).

A read stage (CPU tasks) reads and hashes the photos, and a recognize stage decodes them and runs
``Recognizer.recognize_batch`` in a pool of actors that each load the models once; every face
becomes one row in Parquet shards under ``OUT/faces/``, with ``OUT/summary.json`` beside them.
Ray is an optional extra (``pip install 'mien[batch]'``): the rest of mien never imports it.
"""
