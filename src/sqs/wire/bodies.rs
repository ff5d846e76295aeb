//! Each call's message bodies, carried beside the SDK's input rather than in it: the
//! input owns its strings, so putting a held body there would copy it. The bridge's
//! calls carry empty placeholders; the request writer ([`super::request`]) writes these.

use std::sync::Mutex;

use aws_sdk_sqs::config::interceptors::BeforeSerializationInterceptorContextMut;
use aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_sqs::error::BoxError;
use aws_smithy_types::config_bag::{Storable, StoreReplace};

use crate::sqs::message::MessageBody;

/// One call's message bodies, in entry order, written in place of the input's own (which
/// the bridge leaves empty). Installed on the call as an interceptor, which hands them to
/// the request writer ([`super::request`]) and makes sure it was the request writer ([`super::request`]) that wrote the call: the SDK's serializer
/// would send the empty placeholders. the request writer ([`super::request`]) lets go of them once written, so a call
/// in flight holds its bodies only in its request, as it would with the SDK's input.
#[derive(Debug)]
pub(crate) struct Bodies(Mutex<Option<Vec<MessageBody>>>);

impl Bodies {
    pub(crate) fn new(bodies: Vec<MessageBody>) -> Self {
        Self(Mutex::new(Some(bodies)))
    }
}

/// The bodies in the call's bag, until the request writer ([`super::request`]) has written them.
#[derive(Debug)]
pub(super) struct CallBodies(pub(super) Vec<MessageBody>);

impl Storable for CallBodies {
    type Storer = StoreReplace<Self>;
}

/// Left by the request writer ([`super::request`]) in the call's bag: it wrote the call's [`Bodies`].
#[derive(Debug)]
pub(super) struct WroteBodies;

impl Storable for WroteBodies {
    type Storer = StoreReplace<Self>;
}

impl Intercept for Bodies {
    fn name(&self) -> &'static str {
        "Bodies"
    }

    fn modify_before_serialization(
        &self,
        _: &mut BeforeSerializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let bodies = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(bodies) = bodies {
            cfg.interceptor_state().store_put(CallBodies(bodies));
        }
        Ok(())
    }

    fn read_after_serialization(
        &self,
        _: &aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg.load::<WroteBodies>().is_some() {
            Ok(())
        } else {
            Err("the call was written without its bodies (the client lacks SqsJson)".into())
        }
    }
}
