"""Operations across databases: `migrate`'s copy from one backend into another, over the
endpoints of store/operations.py (the operations on one database are each backend's)."""
