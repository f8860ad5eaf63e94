-- One database per service (no service reads another's tables). Runs once,
-- when the postgres volume is created.
CREATE DATABASE identity_manager;
CREATE DATABASE authn_gateway;
CREATE DATABASE otp_service;
CREATE DATABASE audit_log;
CREATE DATABASE notification;
