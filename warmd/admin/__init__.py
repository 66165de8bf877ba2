"""The admin Unix-socket protocol, server and client."""
