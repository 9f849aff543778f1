"""The hygge worker: a Celery application that runs the flows `hygge enqueue` sends.

Importing this package imports nothing heavy; `worker.app` builds the Celery app.
"""
