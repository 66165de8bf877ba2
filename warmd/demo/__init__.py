"""The demo shop, its traffic, the first-screen measurement and the runner behind `warmd demo`.

Shell code: real processes, sockets and files. Nothing in warmd's core imports it.
"""
