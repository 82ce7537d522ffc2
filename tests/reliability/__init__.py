"""Reliability and security: the fault matrix, properties, secrets, crashes, the soak.

README.md in this folder maps each row of the matrix to the tests that prove it.
"""
