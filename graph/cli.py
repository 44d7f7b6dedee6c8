from plugin.pending import PendingCommand

TEST = PendingCommand("test")
PERMS = PendingCommand("perms")
GRANT = PendingCommand("grant")
REVOKE = PendingCommand("revoke")
AUDIT = PendingCommand("audit")
