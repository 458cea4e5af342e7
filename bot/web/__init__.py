"""Side-server views by feature; webhook_server.setup_routes mounts each module's routes."""
