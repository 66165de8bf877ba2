"""The management console: server-rendered pages, their JSON twins under /api/v1, live
updates by server-sent events, and SVG charts drawn on the server (issue #16)."""
