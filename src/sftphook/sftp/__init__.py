"""The SSH front: SFTP and SCP over asyncssh, with authentication, confinement and events."""
