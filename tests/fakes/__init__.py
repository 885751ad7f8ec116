"""Local fakes of remote services, spoken to by the real third-party SDKs."""
