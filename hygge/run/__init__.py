"""THE engine, used by both runners (`hygge run` in-process, Celery workers).

- steps.py    a flow compiles into steps (move; stage partition i; commit the parts), their
              dependencies, the skip rule, and `execute` (one step with a runner's context)
- context.py  what a runner supplies: progress sink, fence before a commit, the board of a
              partitioned flow's plan and sealed parts (memory here; Redis: worker.board)
- move.py     one move: Home batches -> bounded queue -> Store, verify, commit/abort (`Flow`)
- parts.py    a partitioned flow, orchestrated once: plan, stage, lock + check + commit
- local.py    the in-process executor of many flows in `depends_on` order
"""
