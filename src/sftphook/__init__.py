"""sftphook: a self-hosted SFTP server that turns every file event into a signed webhook."""

__version__ = "0.1.0"
