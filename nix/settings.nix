# Which setting of the service (an environment variable read by app/config/) each
# option of the NixOS module sets. Plain data, so tests can check it against the code.
{
  # Options whose value becomes the variable as it is: booleans as 1/0, lists joined
  # with commas; null or an empty list leaves the variable unset (the service's default).
  direct = {
    listen = "LISTEN";
    port = "PORT";
    loadModelOnStartup = "LOAD_MODEL_ON_STARTUP";
    unloadModelAfterSeconds = "UNLOAD_MODEL_AFTER_S";
    maxModel = "MAX_MODEL";
    cpuFallbackModel = "CPU_FALLBACK_MODEL";
    modelDir = "MODEL_DIR";
    allowDownload = "ALLOW_DOWNLOAD";
    maxTaskQueueSize = "MAX_TASK_QUEUE_SIZE";
    maxUploadMB = "MAX_UPLOAD_MB";
    deleteResultsAfterMinutes = "DELETE_RESULTS_AFTER_M";
    refreshExpirationTimeOnUsage = "REFRESH_EXPIRATION_TIME_ON_USAGE";
    shutdownGraceSeconds = "SHUTDOWN_GRACE_S";
    authorizedMails = "LOG_AUTHORIZED_MAILS";
    logLevel = "LOG_LEVEL";
    logPrivacyMode = "LOG_PRIVACY_MODE";
    trustedProxies = "TRUSTED_PROXIES";
    redisUrl = "REDIS_URL";
  };

  # Options that set a variable in their own way (see module.nix).
  derived = {
    withCUDA = "USE_GPU_IF_AVAILABLE"; # and picks the CUDA package, opens the GPU devices
    dataDir = "LOG_DIR"; # the logs go to dataDir/logs
    apiKeysFile = "API_KEYS_FILE"; # handed over as a systemd credential
    role = "QUEUE_BACKEND"; # redis for "api" and "worker"; "worker" also runs `whisper-api worker`
    redisPasswordFile = "REDIS_PASSWORD_FILE"; # handed over as a systemd credential
  };

  # Options about the unit itself rather than a setting of the service.
  unit = [
    "enable"
    "package"
    "openFirewall"
    "environment"
    "user"
    "group"
  ];
}
