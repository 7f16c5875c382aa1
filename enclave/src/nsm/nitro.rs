//! The real Nitro Security Module. Only built with the `nitro` feature; never opened in tests.

use aws_nitro_enclaves_nsm_api::api::{Request, Response};
use aws_nitro_enclaves_nsm_api::driver;
use serde_bytes::ByteBuf;

use super::{Nsm, NsmError};

pub const DEVICE: &str = "/dev/nsm";

pub struct NitroNsm {
    fd: i32,
}

impl NitroNsm {
    pub fn open() -> Result<Self, NsmError> {
        let fd = driver::nsm_init();
        if fd < 0 {
            return Err(NsmError::Init {
                device: DEVICE.into(),
                detail: std::io::Error::last_os_error().to_string(),
            });
        }
        Ok(NitroNsm { fd })
    }
}

impl Drop for NitroNsm {
    fn drop(&mut self) {
        driver::nsm_exit(self.fd);
    }
}

impl Nsm for NitroNsm {
    fn attest(
        &self,
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
        public_key: Option<&[u8]>,
    ) -> Result<Vec<u8>, NsmError> {
        let req = Request::Attestation {
            user_data: user_data.map(|b| ByteBuf::from(b.to_vec())),
            nonce: nonce.map(|b| ByteBuf::from(b.to_vec())),
            public_key: public_key.map(|b| ByteBuf::from(b.to_vec())),
        };
        match driver::nsm_process_request(self.fd, req) {
            Response::Attestation { document } => Ok(document),
            Response::Error(code) => Err(NsmError::Request(format!("{code:?}"))),
            other => Err(NsmError::Request(format!("unexpected answer {other:?}"))),
        }
    }
}
