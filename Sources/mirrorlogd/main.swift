print("mirrorlogd")
